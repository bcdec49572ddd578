// The ticket-rush load generator (slam bench).
