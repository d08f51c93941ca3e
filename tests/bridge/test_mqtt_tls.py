"""The bridge talks to a TLS-only broker (certificate checked against the configured CA)."""

from __future__ import annotations

import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from tests.support.bridge_proc import BridgeProcess
from tests.support.broker import Mosquitto


def make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    # Mosquitto drops root for the `mosquitto` user: the files must be reachable by it.
    folder = Path(tempfile.mkdtemp(prefix="hearth-tls-", dir=folder.parent.parent.parent))
    folder.chmod(0o755)
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=Hearth test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))
    for path in (ca, key, cert):
        path.chmod(0o644)
    return ca, cert, key


def tls_broker_and_bridge(tmp_path: Path, ca: Path, cert: Path, key: Path, bridge_ca: Path) -> tuple[Mosquitto, BridgeProcess]:
    broker = Mosquitto(extra_config=f"allow_anonymous true\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n").start()
    config = tmp_path / "bridge.yaml"
    config.write_text(f"mqtt:\n  tls:\n    enabled: true\n    ca_file: {bridge_ca}\n")
    return broker, BridgeProcess(broker.host, broker.port, tmp_path / "data", args=["--config", str(config)]).start(wait=False)


def test_bridge_over_tls(tmp_path: Path) -> None:
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    broker, bridge = tls_broker_and_bridge(tmp_path, ca, cert, key, ca)
    try:
        seen: list[bytes] = []
        client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        client.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
        client.on_connect = lambda c, *_: c.subscribe("hearth/bridge/status")
        client.on_message = lambda _c, _u, m: seen.append(m.payload)
        client.connect(broker.host, broker.port)
        client.loop_start()
        deadline = time.monotonic() + 60
        while not any(b'"online"' in p for p in seen):
            assert time.monotonic() < deadline, bridge.log()
            assert bridge.proc and bridge.proc.poll() is None, bridge.log()
            time.sleep(0.1)
        client.loop_stop()
        client.disconnect()
    finally:
        bridge.stop()
        broker.close()


def test_tls_with_an_unknown_ca_never_connects(tmp_path: Path) -> None:
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _, _ = make_ca_and_server_cert(other)
    broker, bridge = tls_broker_and_bridge(tmp_path, ca, cert, key, other_ca)
    try:
        deadline = time.monotonic() + 60
        while "CERTIFICATE_VERIFY_FAILED" not in bridge.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "CERTIFICATE_VERIFY_FAILED" in bridge.log()
        time.sleep(2)
        assert bridge.proc and bridge.proc.poll() is None  # keeps retrying, does not crash
        assert "retrying" in bridge.log()
    finally:
        bridge.stop()
        broker.close()


if __name__ == "__main__":
    pytest.main([__file__])
