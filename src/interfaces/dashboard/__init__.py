"""The dashboard at /admin/queues: a page served by the API, which calls the API itself."""

from interfaces.dashboard.routes import DASHBOARD_ROUTES

__all__ = ["DASHBOARD_ROUTES"]
