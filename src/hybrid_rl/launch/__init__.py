"""Launchers: expand a study into run configs and execute them (in-process or a process pool)."""
