"""Makes scripts/ importable and finds the moeplan binary for the aggregation tests."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
