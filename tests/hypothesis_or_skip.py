"""Hypothesis's names for the property tests, or, where it is not installed (the package's core
dependencies only), stand-ins that turn each property test into a skipped test saying which
extra installs it: the other tests of the same files still run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:
    REASON = "needs hypothesis: pip install 'mosaic-it[test]'"

    class _Anything:
        """Stands for ``st`` and ``HealthCheck``: any attribute, called with anything."""

        def __getattr__(self, name: str) -> Any:
            return self

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return self

        def __or__(self, other: Any) -> Any:  # strategies joined: st.text() | st.none()
            return self

    st = HealthCheck = _Anything()  # type: ignore[assignment]

    def given(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:  # type: ignore[no-redef]
        def skipped_property(test: Callable[..., Any]) -> Any:
            @pytest.mark.skip(reason=REASON)
            def skipped() -> None: ...

            skipped.__name__ = skipped.__qualname__ = test.__name__
            skipped.__doc__ = test.__doc__
            return skipped

        return skipped_property

    def settings(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:  # type: ignore[no-redef]
        return lambda test: test


__all__ = ["HealthCheck", "given", "settings", "st"]
