"""Partner dataset exporters (LeRobot, robomimic)."""
