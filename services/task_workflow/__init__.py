"""The task workflow: from one task declaration to a certified head, with no engineer in the loop."""
