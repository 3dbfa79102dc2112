"""5. Analytics on the live state (bars, greeks, option chains, movers, scanners, options flow): the home of the next stages."""
