"""The brokers' wire encoders: :mod:`~fastflow.sim.wire.kite` (Kite binary frames) and
:mod:`~fastflow.sim.wire.upstox` (Upstox V3 protobuf frames).

Used by the market to encode its frames, by the servers, and by tests and
benchmarks to build frames by hand; the hot path never uses them.
"""
