"""Simulation: synthetic traffic, the simulator, simulated agencies, the demo."""
