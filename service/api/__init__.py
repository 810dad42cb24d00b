"""HTTP layer: dependencies, error translation, body limits and the routes."""
