"""The embedded local stack: a Polyv API simulator and moto's server, for the demo and the tests."""
