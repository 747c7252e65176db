"""Self-contained HTML reports (tables and embedded figures) of predict and fit runs."""

from __future__ import annotations

from atmospec.report.build import write_report

__all__ = ["write_report"]
