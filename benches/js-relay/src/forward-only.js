// The floor of scripts/bench.sh: reads the body and forwards it to the main
// API with no check at all, so its CPU per request is what the runtime
// itself costs for one request in and one fetch out.
export default {
  async fetch(request, env) {
    const body = await request.arrayBuffer();
    const response = await fetch(env.API_URL + env.API_SYNC_PATH, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    await response.body?.cancel();
    return new Response('{"ok":true}', { status: response.ok ? 200 : 502, headers: { "content-type": "application/json" } });
  },
};
