"""What a failing check found: where a tensor is wrong (locate) and why (diagnosis)."""
