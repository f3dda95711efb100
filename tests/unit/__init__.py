"""Tests of pure code: no MongoDB, no server, no process; each runs in milliseconds."""
