"""Remote devices on the service side: device rows and scoped tokens (``access``), the
measurement queue and its leases (``queue``), and the link a job's profilers reach it by
(``link``)."""
