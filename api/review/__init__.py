"""Review workflow: events grouped into review items per camera and rule, with states and comments."""

from api.review.store import ReviewError, ReviewItem, ReviewStore

__all__ = ["ReviewError", "ReviewItem", "ReviewStore"]
