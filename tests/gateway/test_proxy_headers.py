from gateway.upstream import forward_headers, returned_headers

CLIENT = [
    ("Connection", "keep-alive"),
    ("Keep-Alive", "timeout=5"),
    ("Transfer-Encoding", "chunked"),
    ("TE", "trailers"),
    ("Upgrade", "h2c"),
    ("Proxy-Authorization", "Basic x"),
    ("Host", "gateway:8080"),
    ("Content-Length", "12"),
    ("Accept-Encoding", "gzip"),
    ("Authorization", "Bearer sk-1"),
    ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ("Cookie", "session=abc"),
    ("X-Forwarded-For", "6.6.6.6"),
    ("x-priority", "high"),
    ("x-custom", "tenant-thing"),
    ("Content-Type", "application/json"),
]


def test_a_backend_sees_only_the_allowed_client_headers() -> None:
    assert forward_headers(CLIENT) == {
        "Authorization": "Bearer sk-1",  # the backend's own API key (vLLM --api-key)
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "Content-Type": "application/json",
        "accept-encoding": "identity",  # the gateway passes SSE bytes through: never compressed upstream
    }


def test_configured_extra_headers_pass_but_never_hop_by_hop_ones() -> None:
    sent = forward_headers(CLIENT, extra=frozenset({"x-custom", "connection"}))
    assert sent["x-custom"] == "tenant-thing"
    assert "Connection" not in sent
    assert "Cookie" not in sent


def test_a_client_sees_no_backend_header_but_the_content_type() -> None:
    backend = [("Server", "uvicorn"), ("Date", "x"), ("Content-Type", "text/event-stream"), ("x-sim-step", "7")]
    assert returned_headers(backend) == {"content-type": "text/event-stream"}


def test_configured_return_headers_reach_the_client() -> None:
    backend = [("Server", "uvicorn"), ("X-Sim-Step", "7"), ("Content-Type", "application/json")]
    assert returned_headers(backend, frozenset({"x-sim-step"})) == {
        "x-sim-step": "7",
        "content-type": "application/json",
    }
