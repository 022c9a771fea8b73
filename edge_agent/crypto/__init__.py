"""Key files and sealing primitives shared by watchlists (sealed to devices) and events (crops sealed to the control room)."""
