"""The PI stage driver through pipython against the GCS controller simulator, faults included."""

from __future__ import annotations

import pytest

pytest.importorskip("pipython")

from spad.drivers.pi import PIStage  # noqa: E402
from spad.simulators.pi_gcs import MOVE_WITHOUT_SERVO, GcsController, GcsGateway  # noqa: E402
from spad.simulators.stage import StageMotion  # noqa: E402

from spad.errors import DeviceError  # noqa: E402


def _stage(**kw):
    ctrl = GcsController(StageMotion(speed_m_per_s=0.05, settle_s=0.001))
    return ctrl, PIStage(gateway=GcsGateway(ctrl), timeout_ms=200, **kw)


def test_move_and_read_back_over_gcs():
    ctrl, stage = _stage()
    with stage:
        assert stage.axes == ("x", "y", "z")
        rng = stage.get_range()
        assert rng["x"] == pytest.approx((0.0, 200e-6))
        stage.move_to(x_m=12.5e-6, y_m=150e-6, timeout_s=2.0)
        pos = stage.get_position()
        assert pos["x"] == pytest.approx(12.5e-6, abs=1e-12)
        assert pos["y"] == pytest.approx(150e-6, abs=1e-12)
        assert stage.is_settled()
    # the driver switched the servo on and used the GCS commands of the manual
    assert "SVO 1 1 2 1 3 1" in ctrl.log
    assert any(line.startswith("MOV 1 12.5 2 150") for line in ctrl.log)
    assert "ONT? 1 2 3" in ctrl.log and "POS? 1 2 3" in ctrl.log
    assert not stage.is_opened()


def test_target_outside_range_is_refused_before_moving():
    ctrl, stage = _stage()
    with stage, pytest.raises(DeviceError, match="outside the travel range"):
        stage.move_to(x_m=250e-6)
    assert not any(line.startswith("MOV") for line in ctrl.log)


def test_error_code_is_a_clear_error():
    ctrl, stage = _stage()
    with stage:
        ctrl.inject("error", MOVE_WITHOUT_SERVO)
        with pytest.raises(DeviceError, match=r"PI stage.*MOV: GCS error 5"):
            stage.move_to(x_m=10e-6)


def test_no_reply_is_a_clear_error():
    ctrl, stage = _stage()
    with stage:
        ctrl.inject("no_reply")
        with pytest.raises(DeviceError, match=r"PI stage.*POS\?: GCS error -7"):
            stage.get_position()


def test_position_that_does_not_settle_is_a_clear_error():
    ctrl, stage = _stage()
    with stage:
        ctrl.inject("no_settle")
        with pytest.raises(DeviceError, match="did not settle within 0.05 s"):
            stage.move_to(x_m=20e-6, timeout_s=0.05)


def test_missing_axis_is_named():
    ctrl = GcsController(StageMotion(ranges={"x": (0, 1e-4), "y": (0, 1e-4)}))
    stage = PIStage(gateway=GcsGateway(ctrl), axes=("1", "2", "3"))
    with pytest.raises(DeviceError, match="no axis 3"):
        stage.open()
    assert not stage.is_opened()


def test_controller_answers_gcs_syntax():
    ctrl = GcsController()
    assert ctrl.handle("MOV 1 10") is None           # servo off: error 5
    assert ctrl.handle("ERR?") == "5\n"
    assert ctrl.handle("ERR?") == "0\n"               # read once, then cleared
    ctrl.handle("SVO 1 1")
    ctrl.handle("MOV 1 500")                          # beyond 200 µm
    assert ctrl.handle("ERR?") == "7\n"
    assert ctrl.handle("TMX? 1 2") == "1=200.000000 \n2=200.000000\n"
    ctrl.handle("FOO 1")
    assert ctrl.handle("ERR?") == "2\n"
    ctrl.handle("POS? 9")
    assert ctrl.handle("ERR?") == "15\n"


def test_tcp_connection_through_pipythons_socket_gateway():
    """``connection = "tcp"``: the driver opens pipython's PISocket; the controller answers
    GCS over a real TCP socket (a server thread on localhost)."""
    import socket
    import threading

    ctrl = GcsController(StageMotion(speed_m_per_s=0.05, settle_s=0.001))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def serve():
        conn, _ = server.accept()
        buf = b""
        with conn:
            while data := conn.recv(4096):
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    answer = ctrl.handle(line.decode())
                    if answer is not None:
                        conn.sendall(answer.encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with PIStage("tcp", address="127.0.0.1", ip_port=port, timeout_ms=2000) as stage:
            assert stage.name == f"PI stage on 127.0.0.1:{port}"
            stage.move_to(x_m=30e-6, y_m=40e-6, timeout_s=2.0)
            assert stage.get_position()["y"] == pytest.approx(40e-6, abs=1e-12)
        thread.join(5)
        assert not thread.is_alive()            # the driver closed the connection
    finally:
        server.close()
    assert any(line.startswith("MOV 1 30") for line in ctrl.log)
