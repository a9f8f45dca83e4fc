"""Test helpers shipped with arraystore, for its own backends and for third-party ones.

``ArrayStoreTests`` is the conformance suite (pytest), ``make_state_machine`` builds
the Hypothesis state machine that checks a backend against a plain ndarray. Both
need pytest and hypothesis (``pip install 'arraystore[test]'``).
"""

from .dtypes import CONFORMANCE_DTYPES, sample_data
from .stateful import make_state_machine
from .store_tests import ArrayStoreTests, bit_equal

__all__ = ["CONFORMANCE_DTYPES", "ArrayStoreTests", "bit_equal", "make_state_machine", "sample_data"]
