"""The picture community, 秀爱社区 (sections 3.3, 3.4, 3.5, 4.2)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from protocol.base import Id, IdOut, Request, Response, Text

__all__ = [
    "COMMENTS_PER_PAGE",
    "COMMENTS_PER_POST",
    "MSG_MAX",
    "POSTS_PER_PAGE",
    "REPLIES_PER_COMMENT",
    "REPLIES_PER_PAGE",
    "WORDS_MAX",
    "Comment",
    "CommentReply",
    "PictureCommentDeleteRequest",
    "PictureCommentDeleteResponse",
    "PictureCommentListRequest",
    "PictureCommentListResponse",
    "PictureCommentRequest",
    "PictureCommentResponse",
    "PictureDeleteRequest",
    "PictureDeleteResponse",
    "PictureInfoRequest",
    "PictureInfoResponse",
    "PictureLikeRequest",
    "PictureLikeResponse",
    "PictureUnlikeRequest",
    "PictureUnlikeResponse",
    "PictureUploadRequest",
    "PictureUploadResponse",
    "Post",
]

POSTS_PER_PAGE = 20
#: A feed post shows its newest 10 comments, each with its newest 3 replies (3.3).
COMMENTS_PER_POST = 10
REPLIES_PER_COMMENT = 3
#: picture_comment_list_request pages 20 comments, or 20 replies of one comment.
COMMENTS_PER_PAGE = 20
REPLIES_PER_PAGE = 20
WORDS_MAX = 500
MSG_MAX = 500


def _int_to_str(value: Any) -> Any:
    """Read a number sent where a string is expected as its decimal text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _none_to_empty(value: Any) -> Any:
    return "" if value is None else value


#: A client's key for retrying a post or comment safely; "" counts as absent.
ClientMsgId = Annotated[
    Annotated[str, Field(max_length=64)] | None,
    BeforeValidator(lambda v: None if v == "" else _int_to_str(v)),
]


Words = Annotated[str, BeforeValidator(_none_to_empty), Text(WORDS_MAX)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommentReply(_Shape):
    """A reply, filed under its top-level comment."""

    comment_id: IdOut
    comment_response_own: str
    comment_response_msg: str
    user_id: IdOut
    #: The comment this replies to: the top-level one, or a reply under it.
    reply_to: IdOut
    comment_response_time: str
    comment_response_time_ts: int


class Comment(_Shape):
    """A top-level comment with its newest replies, oldest first."""

    comment_id: IdOut
    comment_own: str
    comment_msg: str
    comment_response: list[CommentReply]
    user_id: IdOut
    comment_time: str
    comment_time_ts: int
    #: How many replies the comment has; `comment_response` holds the newest 3 at most.
    comment_response_num: str


class Post(_Shape):
    """One community post as the feed shows it."""

    picture_id: IdOut
    picture_publish_time: str
    picture_content: str
    picture_words: str
    picture_like_num: str
    picture_owner: str
    picture_comment: list[Comment]
    picture_comment_num: str
    user_id: IdOut
    liked_by_me: bool
    picture_publish_time_ts: int


class PictureInfoResponse(Response):
    type: Literal["picture_info_response"] = "picture_info_response"
    information: list[Post] = []


class PictureInfoRequest(Request):
    """The newest posts, or those older than `before`."""

    RESPONSE = PictureInfoResponse
    type: Literal["picture_info_request"] = "picture_info_request"
    before: Id | None = None
    limit: Annotated[int, Field(ge=1, le=POSTS_PER_PAGE)] = POSTS_PER_PAGE


class PictureCommentListResponse(Response):
    """`picture_comment` answers a page of comments, `comment_response` one of replies."""

    type: Literal["picture_comment_list_response"] = "picture_comment_list_response"
    picture_comment: list[Comment] | None = None
    comment_response: list[CommentReply] | None = None


class PictureCommentListRequest(Request):
    """A post's comments older than the comment `before` (the newest without it).

    With `comment_id`, that comment's replies older than the reply `before` instead.
    """

    RESPONSE = PictureCommentListResponse
    type: Literal["picture_comment_list_request"] = "picture_comment_list_request"
    picture_id: Id
    comment_id: Id | None = None
    before: Id | None = None


class PictureUploadResponse(Response):
    type: Literal["picture_upload_response"] = "picture_upload_response"
    picture_id: IdOut | None = None
    picture_content: str | None = None


class PictureUploadRequest(Request):
    """Post a picture with words; `tel` is informational."""

    RESPONSE = PictureUploadResponse
    type: Literal["picture_upload_request"] = "picture_upload_request"
    picture: Annotated[str, Field(min_length=1)]
    words: Words = ""
    #: Informational only (the token decides who posts): any value is accepted.
    tel: Any = None
    client_msg_id: ClientMsgId = None


class PictureLikeResponse(Response):
    type: Literal["picture_like_response"] = "picture_like_response"
    picture_like_num: str | None = None


class PictureLikeRequest(Request):
    RESPONSE = PictureLikeResponse
    type: Literal["picture_like_request"] = "picture_like_request"
    picture_id: Id


class PictureUnlikeResponse(Response):
    type: Literal["picture_unlike_response"] = "picture_unlike_response"
    picture_like_num: str | None = None


class PictureUnlikeRequest(Request):
    RESPONSE = PictureUnlikeResponse
    type: Literal["picture_unlike_request"] = "picture_unlike_request"
    picture_id: Id


class PictureCommentResponse(Response):
    type: Literal["picture_comment_response"] = "picture_comment_response"
    comment_id: IdOut | None = None


class PictureCommentRequest(Request):
    """Comment on a picture, or reply to one of its comments."""

    RESPONSE = PictureCommentResponse
    type: Literal["picture_comment_request"] = "picture_comment_request"
    picture_id: Id
    msg: Annotated[str, Text(MSG_MAX, min_length=1)]
    reply_to: Id | None = None
    client_msg_id: ClientMsgId = None


class PictureCommentDeleteResponse(Response):
    type: Literal["picture_comment_delete_response"] = "picture_comment_delete_response"


class PictureCommentDeleteRequest(Request):
    RESPONSE = PictureCommentDeleteResponse
    type: Literal["picture_comment_delete_request"] = "picture_comment_delete_request"
    comment_id: Id


class PictureDeleteResponse(Response):
    type: Literal["picture_delete_response"] = "picture_delete_response"


class PictureDeleteRequest(Request):
    RESPONSE = PictureDeleteResponse
    type: Literal["picture_delete_request"] = "picture_delete_request"
    picture_id: Id
