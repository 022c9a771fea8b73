"""The browser console (edge-agent control-room serve)."""
