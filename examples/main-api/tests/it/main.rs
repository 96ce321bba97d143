//! Native tests of the API's handlers and SQL: the same `service` functions
//! the Worker runs, against SQLite with the same migrations D1 applies.

mod apply;
mod convergence;
mod sqlite;
