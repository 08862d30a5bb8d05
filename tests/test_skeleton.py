from click.testing import CliRunner

from mcnode import __version__, _native
from mcnode.cli import main


def test_cli_reports_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_native_basepoint_matches_rfc9496() -> None:
    one = (1).to_bytes(32, "little")
    # RFC 9496 A.1: encoding of the Ristretto255 generator B.
    assert _native.basepoint_mul(one).hex() == (
        "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76"
    )
    assert _native.is_valid_point(_native.basepoint_mul(one))
    assert not _native.is_valid_point(b"\xff" * 32)
