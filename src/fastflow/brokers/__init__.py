"""Everything broker-specific, behind one registry."""
