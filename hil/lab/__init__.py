"""Lab operations on a board: leases, recovery, kernel deploys, the nightly run and its history."""
