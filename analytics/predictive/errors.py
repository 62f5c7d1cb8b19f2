"""Typed failures the pages can show as they are: each message is written for a merchant."""

from __future__ import annotations


class PredictiveError(Exception):
    """Base class: the predictive figures cannot be computed for this shop right now."""

    code = "predictive_error"


class InsufficientDataError(PredictiveError):
    """Too few customers, or too little repeat buying, for a fit worth showing."""

    code = "insufficient_data"


class FitFailedError(PredictiveError):
    """The optimiser did not converge, or converged to parameters the model cannot use."""

    code = "fit_failed"
