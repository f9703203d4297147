"""The "Seedance video" extra link: the finished video's URL, on the operator's and the sensor's task.

Airflow 3 resolves extra links in the worker, right after each run of the task (also when it defers),
and stores the result as an XCom the UI reads. The link is the URL the operator or sensor handed
back in this run (the same value as its ``output_url`` XCom); for any other operator it is read from
the ``output_url`` XCom. Reading our own operator's attribute instead of the XCom avoids an
"XCom not found" error line in the task log on every deferral and failure.

While a generation runs (or when it failed) the link is empty: the only other thing it could point
at, the status endpoint, needs the API key in a header, so a browser would only get a 401. The
request id is in the ``request_id`` XCom meanwhile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

__all__ = ["OUTPUT_URL_ATTRIBUTE", "OUTPUT_URL_XCOM_KEY", "SeedanceVideoLink"]

#: XCom key of the finished video's URL (pushed by the operator and the sensor).
OUTPUT_URL_XCOM_KEY = "output_url"
#: Attribute on our operator and sensor holding the URL delivered in the current run (None before).
OUTPUT_URL_ATTRIBUTE = "seedance_output_url"
_ABSENT = object()


class SeedanceVideoLink(BaseOperatorLink):
    """Link to the generated video (empty until the generation succeeded)."""

    name = "Seedance video"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        """The delivered output URL, or ``""`` when there is none (yet).

        :param operator: the operator the link belongs to.
        :param ti_key: the task instance.
        """
        url = getattr(operator, OUTPUT_URL_ATTRIBUTE, _ABSENT)
        if url is _ABSENT:
            url = XCom.get_value(ti_key=ti_key, key=OUTPUT_URL_XCOM_KEY)
        # Only an http(s) URL becomes a link: a stray value must not turn into a javascript: href.
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            return url
        return ""
