from gateway.upstream import forward_headers


def test_hop_by_hop_and_framing_headers_are_dropped_end_to_end_ones_kept() -> None:
    sent = forward_headers(
        [
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
            ("x-custom", "kept"),
            ("Content-Type", "application/json"),
        ]
    )
    assert sent == {
        "Authorization": "Bearer sk-1",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "x-custom": "kept",
        "Content-Type": "application/json",
        "accept-encoding": "identity",  # the gateway passes SSE bytes through: never compressed upstream
    }
