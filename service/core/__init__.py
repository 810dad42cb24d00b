"""Configuration, database engines, security and the domain error hierarchy."""
