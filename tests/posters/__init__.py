"""Tests of iss.posters."""
