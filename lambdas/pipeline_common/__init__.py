"""What every Lambda package of the app shares: the bundler copies this package into each bundle."""
