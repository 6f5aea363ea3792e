"""Streamlit pages of Routing ML; app.py builds the navigation from them."""

import streamlit as st


def _leave_legacy_pages_mode() -> None:
    """Rerun through app.py when Streamlit ran a page the pre-``st.navigation`` way.

    Until ``st.navigation`` has run once, a fresh Streamlit server treats a folder
    named ``pages/`` as the legacy multipage layout. A deep link such as ``/times``
    as the first request would then run that file alone: no page config, no
    navigation, no language switch. Clearing the flag and rerunning sends the same
    URL through app.py.
    """
    # NOTE: PagesManager.uses_pages_directory is internal to Streamlit (checked on 1.67).
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


# app.py and every page import this package first, before the heavy imports of
# routing_core, so a legacy first run is left within milliseconds.
_leave_legacy_pages_mode()
