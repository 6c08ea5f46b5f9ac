"""Residents' reports (phản ánh): filed on a public page or through Open311 GeoReport v2, followed by
a tracking code, triaged and answered by staff in the console, with camera events linked as evidence.

``ReportDesk`` is the one place that changes reports (and audits each change); the public routes
(``api.reports.open311``, ``api.reports.resident``) and the staff routes (``api.reports.staff``,
``api.reports.console``) only call it.
"""

from api.reports.config import ReportsConfig
from api.reports.desk import ReportDesk

__all__ = ["ReportDesk", "ReportsConfig"]
