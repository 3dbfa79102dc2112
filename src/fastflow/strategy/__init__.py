"""6. The strategy engine (strategy API, runner, paper broker, positions and P&L, risk): the home of a next stage."""
