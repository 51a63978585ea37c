import pytest

from gateway.routing.prefix import PrefixHasher

H = PrefixHasher(block_chars=8, max_blocks=4)


def test_only_full_blocks_are_hashed() -> None:
    assert H.blocks("m", "x" * 7) == ()
    assert len(H.blocks("m", "x" * 8)) == 1
    assert len(H.blocks("m", "x" * 23)) == 2


def test_blocks_are_capped() -> None:
    assert len(H.blocks("m", "x" * 1000)) == 4


def test_shared_prefix_shares_leading_blocks_then_diverges() -> None:
    a = H.blocks("m", "SYSTEMPRsharedXXuser-one")
    b = H.blocks("m", "SYSTEMPRsharedXXuser-two")
    assert a[:2] == b[:2]
    assert a[2] != b[2]


def test_a_block_hash_names_its_whole_prefix() -> None:
    # same third block text after different leading text: different hash (chained)
    assert H.blocks("m", "AAAAAAAABBBBBBBBcccccccc")[2] != H.blocks("m", "ZZZZZZZZBBBBBBBBcccccccc")[2]


@pytest.mark.parametrize(
    ("model", "salt"),
    [pytest.param("other-model", None, id="model"), pytest.param("m", "tenant-b", id="salt")],
)
def test_model_and_salt_seed_the_chain(model: str, salt: str | None) -> None:
    text = "x" * 16
    assert set(H.blocks(model, text, salt)).isdisjoint(H.blocks("m", text))


def test_non_ascii_is_cut_on_characters_and_stable() -> None:
    text = "é" * 16 + "日本語のテキスト"
    blocks = H.blocks("m", text)
    assert len(blocks) == 3
    assert blocks == H.blocks("m", text)
    assert blocks[:2] == H.blocks("m", "é" * 16)


def test_deterministic_across_instances() -> None:
    assert PrefixHasher(8, 4).blocks("m", "y" * 32) == H.blocks("m", "y" * 32)
    assert H.predicted_tokens(3) == 6
