//! What became of one outgoing HTTP request: the Workers' glue performs
//! it (`clerk_sync_platform::exchange`) and hands this to a core that
//! asked for it (a re-sync run's answers are these).

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Status {
        status: u16,
        /// The `Retry-After` header, as sent.
        retry_after: Option<String>,
        /// Empty when the answer was longer than the asker's limit: too
        /// large to be the answer expected, so unreadable.
        body: Vec<u8>,
    },
    /// No answer: DNS, connection refused or reset, or a request the
    /// runtime would not build.
    Unreachable,
    TimedOut,
}
