"""The local brokers' endpoints over the simulated market: :mod:`~fastflow.sim.servers.kite`
(Kite's ticker WebSocket), :mod:`~fastflow.sim.servers.upstox` (Upstox's authorize
endpoint and V3 feed) and the fault switches both offer (:mod:`~fastflow.sim.servers.faults`).
"""
