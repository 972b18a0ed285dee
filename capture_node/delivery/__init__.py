"""Delivering datasets to partners: partner tokens (stored as hashes) and dataset grants, the authenticated
HTTP API that serves the granted exports and the episodes they came from (`excap serve`: routes in `api`,
bearer tokens in `auth`, the bounded `access_log`, ranged and checksummed `file_response`), and verified S3
push and pull of episodes and exports.

Public names are imported on first use (`excap.core.lazy_exports`): importing the package, or any
module in it, imports nothing else.
"""

from typing import TYPE_CHECKING

from excap.core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from excap.delivery.access_log import AccessLogOptions
    from excap.delivery.api import DeliveryService, create_app
    from excap.delivery.partner_episodes import partner_episode
    from excap.delivery.partners import Partner, PartnerError, PartnerStore
    from excap.delivery.s3sync import SyncOptions, SyncReport, pull, push
    from excap.delivery.serve import BackgroundServer, ServerOptions

__all__ = ["AccessLogOptions", "BackgroundServer", "DeliveryService", "Partner", "PartnerError", "PartnerStore",
           "ServerOptions", "SyncOptions", "SyncReport", "create_app", "partner_episode", "pull", "push"]

__getattr__, __dir__ = lazy_exports(__name__, __all__, {
    "excap.delivery.partners": ["Partner", "PartnerError", "PartnerStore"],
    "excap.delivery.serve": ["BackgroundServer", "ServerOptions"],
    "excap.delivery.api": ["DeliveryService", "create_app"],
    "excap.delivery.access_log": ["AccessLogOptions"],
    "excap.delivery.partner_episodes": ["partner_episode"],
    "excap.delivery.s3sync": ["SyncOptions", "SyncReport", "pull", "push"],
})
