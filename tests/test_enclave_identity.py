"""The enclave's code identity: MRENCLAVE (the same install measures the same, one byte of
any measured file changes it, host code does not), the signer key and its MRSIGNER, the
signed .css (round trip, every flipped bit refused, another key another signer), the
`mcnode enclave` commands, and an enclave process that reports its signer or refuses to
start with a .css for another build."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import mcnode
from mcnode.cli import main
from mcnode.enclave.css import (
    CSS_BYTES,
    MAGIC,
    NO_MRSIGNER,
    SIGNED_BYTES,
    Css,
    CssError,
    load_css,
    mrsigner,
    read_css,
    read_css_file,
)
from mcnode.enclave.measure import measure, measured_modules, package_root
from mcnode.enclave.process import EnclaveProcess, EnclaveProcessError, serve_command
from mcnode.enclave.sealing import KEYS_FILE
from mcnode.enclave.signer import SignerKeyError, load_signer_key, new_signer_key, sign_css
from mcnode.ledger import LedgerDB
from mcnode.ledger.synthetic import ChainBuilder

DAY = datetime.date(2026, 11, 30)
#: Not a file in the tree: a module name `measured_modules` gives for the native extension.
NATIVE = "mcnode._native"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the installed mcnode package (sources and native extension)."""
    copy = tmp_path_factory.mktemp("tree") / "mcnode"
    shutil.copytree(package_root(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, rsa.RSAPrivateKey]:
    path = tmp_path_factory.mktemp("signer") / "signer.pem"
    return path, new_signer_key(path)


@pytest.fixture(scope="module")
def here() -> bytes:
    return measure()


def _env() -> dict[str, str]:
    """This copy of mcnode first on the path of a child process."""
    src = str(Path(mcnode.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def _flip(path: Path) -> bytes:
    """Change one byte of `path`, keeping Python source valid (its last newline becomes a
    space; a bit in the middle of any other file); an empty file gets one. The old bytes."""
    data = path.read_bytes()
    if not data:
        changed = b" "
    elif path.suffix == ".py" and data.endswith(b"\n"):
        changed = data[:-1] + b" "
    else:
        middle = len(data) // 2
        changed = data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]
    path.write_bytes(changed)
    return data


# -- MRENCLAVE ---------------------------------------------------------------------------


def test_the_same_install_measures_the_same_in_two_processes(here: bytes) -> None:
    commands = (["-m", "mcnode", "enclave", "measure"], ["-m", "mcnode.enclave", "measure"])
    seen = {
        subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, check=True, env=_env()
        ).stdout.strip()
        for args in commands
    }
    assert seen == {here.hex()}


def test_one_changed_byte_in_any_measured_file_changes_it(tree: Path, here: bytes) -> None:
    modules = measured_modules(tree)
    names = {name for name, _ in modules}
    assert {"mcnode.enclave.__main__", "mcnode.enclave.server", "mcnode.enclave.css"} <= names
    assert NATIVE in names and len(modules) > 30
    assert measure(tree) == here
    for name, path in modules:
        original = _flip(path)
        try:
            assert measure(tree) != here, name
        finally:
            path.write_bytes(original)
    assert measure(tree) == here


@pytest.mark.parametrize(
    "file", ["node/host.py", "cli.py", "enclave/cli.py", "enclave/signer.py", "enclave/process.py"]
)
def test_a_host_only_file_does_not_change_it(tree: Path, here: bytes, file: str) -> None:
    path = tree / file
    assert path not in {p for _, p in measured_modules(tree)}
    original = _flip(path)
    try:
        assert measure(tree) == here
    finally:
        path.write_bytes(original)


# -- the signer key and MRSIGNER ---------------------------------------------------------


def test_mrsigner_is_the_sha256_of_the_little_endian_modulus(
    signer: tuple[Path, rsa.RSAPrivateKey],
) -> None:
    path, key = signer
    # Independently: openssl reads the PEM and prints the modulus big-endian in hex.
    out = subprocess.run(
        ["openssl", "rsa", "-in", str(path), "-noout", "-modulus"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    big_endian = bytes.fromhex(out.removeprefix("Modulus="))
    assert len(big_endian) == 384 and big_endian[0] & 0x80
    assert mrsigner(key.public_key()) == hashlib.sha256(big_endian[::-1]).digest()
    assert key.public_key().public_numbers().e == 3
    # Byte order pinned: the least significant byte first, the top bit in the last byte.
    n = (1 << 3071) | 3
    pinned = hashlib.sha256(b"\x03" + bytes(382) + b"\x80").digest()
    assert mrsigner(rsa.RSAPublicNumbers(3, n).public_key()) == pinned


def test_the_signer_key_is_private_never_overwritten_and_checked(
    signer: tuple[Path, rsa.RSAPrivateKey], tmp_path: Path
) -> None:
    path, key = signer
    assert path.stat().st_mode & 0o777 == 0o600
    before = path.read_bytes()
    with pytest.raises(SignerKeyError, match="exists"):
        new_signer_key(path)
    assert path.read_bytes() == before
    assert load_signer_key(path).private_numbers() == key.private_numbers()
    shared = tmp_path / "shared.pem"
    shared.write_bytes(before)
    shared.chmod(0o644)
    with pytest.raises(SignerKeyError, match="chmod 600"):
        load_signer_key(shared)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = tmp_path / "weak.pem"
    other.write_bytes(
        weak.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    other.chmod(0o600)
    with pytest.raises(SignerKeyError, match="RSA-3072 with exponent 3, not RSA-2048"):
        load_signer_key(other)
    with pytest.raises(SignerKeyError):
        sign_css(weak, bytes(32))
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64\n")
    garbage.chmod(0o600)
    with pytest.raises(SignerKeyError, match="not an unencrypted PEM"):
        load_signer_key(garbage)


# -- the .css ----------------------------------------------------------------------------


def test_sign_then_read_round_trips(signer: tuple[Path, rsa.RSAPrivateKey]) -> None:
    _, key = signer
    mrenclave = bytes(range(32))
    data = sign_css(key, mrenclave, isv_prod_id=7, isv_svn=65535, date=DAY)
    assert len(data) == CSS_BYTES == 819 and data.startswith(MAGIC + b"\x01")
    css = read_css(data)
    assert (css.mrenclave, css.isv_prod_id, css.isv_svn, css.date) == (mrenclave, 7, 65535, DAY)
    assert css.mrsigner == mrsigner(key.public_key())
    assert css.to_bytes() == data
    assert sign_css(key, mrenclave, 7, 65535, DAY) == data  # PKCS#1 v1.5: deterministic
    assert data[7:11] == (20261130).to_bytes(4, "little")
    assert data[SIGNED_BYTES - 4 : SIGNED_BYTES] == (3).to_bytes(4, "little")
    assert "modulus" not in repr(css) and "signature" not in repr(css)
    for bad in ((-1, 0), (0, 65536)):
        with pytest.raises(ValueError, match="16-bit"):
            sign_css(key, mrenclave, *bad)
    with pytest.raises(ValueError):
        sign_css(key, bytes(31))


def test_a_flipped_bit_anywhere_in_a_css_is_refused(
    signer: tuple[Path, rsa.RSAPrivateKey],
) -> None:
    _, key = signer
    data = sign_css(key, bytes(range(32)), 1, 2, DAY)
    messages = set()
    for offset in range(len(data)):
        for bit in range(8):
            changed = bytearray(data)
            changed[offset] ^= 1 << bit
            with pytest.raises(CssError) as err:
                read_css(bytes(changed))
            messages.add(str(err.value).split(" ")[0])
    assert len(messages) > 3  # magic, version, date, modulus, exponent, signature...
    for size in range(len(data)):
        with pytest.raises(CssError):
            read_css(data[:size])
    with pytest.raises(CssError, match="819 bytes"):
        read_css(data + b"\0")


def test_a_css_signed_by_another_key_names_another_signer(
    signer: tuple[Path, rsa.RSAPrivateKey], tmp_path: Path
) -> None:
    _, key = signer
    other = new_signer_key(tmp_path / "other.pem")
    mine, theirs = (read_css(sign_css(k, bytes(32), 0, 0, DAY)) for k in (key, other))
    assert mine.mrsigner != theirs.mrsigner
    assert theirs.mrsigner == mrsigner(other.public_key())
    # Another signer's key put in my .css (to claim their MRSIGNER): the signature fails.
    transplant = Css(mine.mrenclave, 0, 0, DAY, theirs.modulus, mine.signature)
    with pytest.raises(CssError, match="does not verify"):
        read_css(transplant.to_bytes())


def test_load_css_refuses_a_css_for_another_build(
    signer: tuple[Path, rsa.RSAPrivateKey], tmp_path: Path, here: bytes
) -> None:
    _, key = signer
    path = tmp_path / "enclave.css"
    path.write_bytes(sign_css(key, here))
    assert load_css(path, here).mrenclave == here
    other = os.urandom(32)
    with pytest.raises(CssError) as err:
        load_css(path, other)
    assert here.hex() in str(err.value) and other.hex() in str(err.value)
    with pytest.raises(CssError, match="cannot read"):
        read_css_file(tmp_path / "missing.css")


# -- the commands ------------------------------------------------------------------------


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, ["enclave", *args], prog_name="mcnode")


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line


def test_the_commands_make_a_key_sign_show_and_measure(
    tmp_path: Path, here: bytes, signer: tuple[Path, rsa.RSAPrivateKey]
) -> None:
    key_path = tmp_path / "signer.pem"
    made = _run("signer-key", "--out", str(key_path))
    assert made.exit_code == 0, made.output
    key = load_signer_key(key_path)
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert f"mrsigner: {mrsigner(key.public_key()).hex()}" in made.stdout
    before = key_path.read_bytes()
    assert "exists" in _one_error_line(_run("signer-key", "--out", str(key_path)))
    assert key_path.read_bytes() == before

    css_path = tmp_path / "enclave.css"
    signed = _run("sign", "--key", str(key_path), "--out", str(css_path), "--isv-prod-id", "5")
    assert signed.exit_code == 0, signed.output
    assert here.hex() in signed.stdout
    css = read_css_file(css_path)
    assert (css.mrenclave, css.mrsigner, css.isv_prod_id, css.isv_svn) == (
        here,
        mrsigner(key.public_key()),
        5,
        0,
    )

    shown = _run("show", "--css", str(css_path), "--json")
    assert shown.exit_code == 0
    assert json.loads(shown.stdout) == {
        "mrenclave": here.hex(),
        "mrsigner": css.mrsigner.hex(),
        "isv_prod_id": 5,
        "isv_svn": 0,
        "date": css.date.isoformat(),
    }
    text = _run("show", "--css", str(css_path))
    assert text.exit_code == 0 and f"mrsigner     {css.mrsigner.hex()}" in text.stdout

    plain = _run("measure")
    assert (plain.exit_code, plain.stdout) == (0, here.hex() + "\n")
    unsigned = _run("measure", "--json")
    assert json.loads(unsigned.stdout) == {
        "mrenclave": here.hex(),
        "mrsigner": None,
        "isv_prod_id": None,
        "isv_svn": None,
    }
    identity = json.loads(_run("measure", "--json", "--css", str(css_path)).stdout)
    assert identity == {
        "mrenclave": here.hex(),
        "mrsigner": css.mrsigner.hex(),
        "isv_prod_id": 5,
        "isv_svn": 0,
    }


def test_the_commands_refuse_bad_input_in_one_line(
    tmp_path: Path, here: bytes, signer: tuple[Path, rsa.RSAPrivateKey]
) -> None:
    key_path, key = signer
    elsewhere = os.urandom(32)
    other_build = tmp_path / "other.css"
    other_build.write_bytes(sign_css(key, elsewhere))
    line = _one_error_line(_run("measure", "--css", str(other_build)))
    assert here.hex() in line and elsewhere.hex() in line
    forged = bytearray(other_build.read_bytes())
    forged[20] ^= 0x01  # inside MRENCLAVE
    (tmp_path / "forged.css").write_bytes(bytes(forged))
    assert "does not verify" in _one_error_line(_run("show", "--css", str(tmp_path / "forged.css")))
    assert "cannot read" in _one_error_line(_run("show", "--css", str(tmp_path / "none.css")))
    shared = tmp_path / "shared.pem"
    shared.write_bytes(key_path.read_bytes())
    shared.chmod(0o644)
    out = tmp_path / "enclave.css"
    assert "chmod 600" in _one_error_line(_run("sign", "--key", str(shared), "--out", str(out)))
    assert not out.exists()
    over = _run("sign", "--key", str(key_path), "--out", str(out), "--isv-svn", "65536")
    assert over.exit_code == 2 and not out.exists() and "Traceback" not in over.output


# -- the enclave process -----------------------------------------------------------------


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    db = LedgerDB(tmp_path_factory.mktemp("ledger") / "ledger", create=True)
    try:
        db.append_block(ChainBuilder(bytes(range(32))).next(outputs=4))
        yield db.path
    finally:
        db.close()


def _start(ledger: Path, keys: Path, log: Path, css: Path) -> EnclaveProcess:
    with log.open("a") as stderr:
        return EnclaveProcess.start(ledger, keys, stderr=stderr, css=css)


def test_serve_command_passes_the_css_only_when_given(tmp_path: Path) -> None:
    assert "--css" not in serve_command(3, tmp_path, tmp_path)
    assert serve_command(3, tmp_path, tmp_path, css=tmp_path / "e.css")[-2:] == [
        "--css",
        str(tmp_path / "e.css"),
    ]


def test_a_process_started_with_its_css_reports_its_signer(
    ledger: Path, tmp_path: Path, here: bytes, signer: tuple[Path, rsa.RSAPrivateKey]
) -> None:
    _, key = signer
    css_path = tmp_path / "enclave.css"
    css_path.write_bytes(sign_css(key, here, isv_prod_id=3, isv_svn=9))
    log = tmp_path / "enclave.log"
    with _start(ledger, tmp_path / "keys", log, css_path) as enclave:
        me = enclave.identity()
        assert me.measurement == here
        assert me.mrsigner == mrsigner(key.public_key()) != NO_MRSIGNER
        assert (me.isv_prod_id, me.isv_svn) == (3, 9)
    [started] = [line for line in log.read_text().splitlines() if "enclave started" in line]
    assert f"mrsigner={me.mrsigner.hex()}" in started and "isv_svn=9" in started


def test_a_process_refuses_a_css_for_another_build_or_a_forged_one(
    ledger: Path, tmp_path: Path, here: bytes, signer: tuple[Path, rsa.RSAPrivateKey]
) -> None:
    _, key = signer
    elsewhere = os.urandom(32)
    other_build = tmp_path / "other.css"
    other_build.write_bytes(sign_css(key, elsewhere))
    forged = tmp_path / "forged.css"
    data = bytearray(sign_css(key, here, isv_svn=1))
    data[45] ^= 0x02  # isv_svn 1 -> 3: an SVN the signer never gave
    forged.write_bytes(bytes(data))
    keys = tmp_path / "keys"
    cases = [
        (other_build, [here.hex(), elsewhere.hex(), "mcnode enclave sign"]),
        (forged, ["does not verify"]),
        (tmp_path / "missing.css", ["cannot read"]),
    ]
    for css_path, words in cases:
        log = tmp_path / f"{css_path.stem}.log"
        with pytest.raises(EnclaveProcessError, match="exited with code 3"):
            _start(ledger, keys, log, css_path)
        [line] = log.read_text().splitlines()
        assert "cannot start" in line and str(css_path) in line, line
        assert all(word in line for word in words), line
    assert not (keys / KEYS_FILE).exists()  # no keys made for a build that did not start
