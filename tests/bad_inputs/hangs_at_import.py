"""Hangs while being imported (a download or a training run at the top level)."""

import time

time.sleep(3600)
