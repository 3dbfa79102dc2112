"""The local broker: a synthetic market served over the brokers' own wire.

* :mod:`~fastflow.sim.universe`: the synthetic instrument universe, in each
  broker's instrument-master format;
* :mod:`~fastflow.sim.market`: the market model (price walk, order books,
  indices from constituents, injected events) and its Kite / Upstox frames;
* :mod:`~fastflow.sim.wire`: the Kite and Upstox wire encoders;
* :mod:`~fastflow.sim.servers`: the Kite and Upstox WebSocket servers and
  their fault switches.

Layering: ``universe`` <- ``market`` <- ``servers``, and ``wire`` <- ``market``,
``servers``; the sim imports ``brokers``, ``reference`` and ``instruments``,
and nothing in production imports the sim (only the simulator service does).
"""
