"""The picture community, 秀爱社区: feed, upload, likes, comments (3.3, 3.4, 3.5, 4.2)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TypeVar

import pydantic_core

from lovewire.context import Context, app_time
from lovewire.errors import CommentNotFound, NotAuthor, PictureNotFound
from lovewire.images import image_url
from lovewire.registry import HandlerTable
from lovewire.storage.base import Unit
from lovewire.storage.records import Picture, PictureComment
from lovewire.uploads import (
    UPLOAD,
    check_budget,
    check_stored,
    forget_file,
    give_back,
    store_picture,
)
from protocol.pictures import (
    COMMENTS_PER_PAGE,
    COMMENTS_PER_POST,
    REPLIES_PER_COMMENT,
    REPLIES_PER_PAGE,
    Comment,
    CommentReply,
    PictureCommentDeleteRequest,
    PictureCommentDeleteResponse,
    PictureCommentListRequest,
    PictureCommentListResponse,
    PictureCommentRequest,
    PictureCommentResponse,
    PictureDeleteRequest,
    PictureDeleteResponse,
    PictureInfoRequest,
    PictureInfoResponse,
    PictureLikeRequest,
    PictureLikeResponse,
    PictureUnlikeRequest,
    PictureUnlikeResponse,
    PictureUploadRequest,
    PictureUploadResponse,
    Post,
)
from protocol.pushes import PictureCommentNotify, PictureLikeNotify
from protocol.times import HOUR, MINUTE

__all__ = ["table"]

table = HandlerTable()

_T = TypeVar("_T")

COMMENT = "comment"
#: A feed response stays under about 1 MiB whatever the texts (3.3): one that would be
#: larger shows fewer replies per comment, then fewer comments per post, oldest first.
FEED_BYTES = 1_000_000
#: JSON bytes a comment or reply object takes besides its texts, at most (keys, ids, times).
OBJECT_BYTES = 400
#: Bytes a character of text takes in JSON, at most (`\u001f`).
CHAR_BYTES = 6


async def _picture(tx: Unit, picture_id: int) -> Picture:
    """The picture, or PictureNotFound (error 8)."""
    picture = await tx.pictures.get(picture_id)
    if picture is None:
        raise PictureNotFound()
    return picture


def _reply(ctx: Context, r: PictureComment) -> CommentReply:
    assert r.parent_id is not None
    return CommentReply(
        comment_id=r.id,
        comment_response_own=r.author_nickname,
        comment_response_msg=r.msg,
        user_id=r.author_id,
        reply_to=r.reply_to if r.reply_to is not None else r.parent_id,
        comment_response_time=app_time(ctx, r.created_ts),
        comment_response_time_ts=r.created_ts,
    )


def _threads(
    ctx: Context, comments: Sequence[PictureComment], replies: Sequence[PictureComment]
) -> dict[int, list[Comment]]:
    """Comments by picture id, each with its replies, in storage order (oldest first)."""
    by_parent: dict[int, list[CommentReply]] = defaultdict(list)
    for r in replies:
        assert r.parent_id is not None
        by_parent[r.parent_id].append(_reply(ctx, r))
    by_picture: dict[int, list[Comment]] = defaultdict(list)
    for c in comments:
        by_picture[c.picture_id].append(
            Comment(
                comment_id=c.id,
                comment_own=c.author_nickname,
                comment_msg=c.msg,
                comment_response=by_parent.get(c.id, []),
                user_id=c.author_id,
                comment_time=app_time(ctx, c.created_ts),
                comment_time_ts=c.created_ts,
                comment_response_num=str(c.reply_count),
            )
        )
    return by_picture


def _newest(items: list[_T], keep: int) -> list[_T]:
    return items[len(items) - keep :] if keep > 0 else []


def _fit(posts: list[Post], budget: int) -> None:
    """Drop the oldest replies, then the oldest comments, until the posts fit in `budget`.

    Every comment keeps the same number of replies at most (2, 1, then 0), then every
    post the same number of comments (9, 8, ...). The counts stay true, so a client
    pages what was dropped.
    """
    comments = [c for p in posts for c in p.picture_comment]
    replies = [r for c in comments for r in c.comment_response]
    texts = sum(len(c.comment_own) + len(c.comment_msg) for c in comments) + sum(
        len(r.comment_response_own) + len(r.comment_response_msg) for r in replies
    )
    bound = (texts * CHAR_BYTES + (len(comments) + len(replies)) * OBJECT_BYTES) + sum(
        CHAR_BYTES * (len(p.picture_words) + len(p.picture_owner) + len(p.picture_content))
        + OBJECT_BYTES
        for p in posts
    )
    if bound <= budget:
        return  # certainly fits: the usual feed costs no sizing
    base = len(pydantic_core.to_json([p.model_copy(update={"picture_comment": []}) for p in posts]))
    # Per post, per comment (oldest first): its bytes with all its replies, each reply's.
    sized = [
        [
            (
                len(pydantic_core.to_json(c)) + 1,
                [len(pydantic_core.to_json(r)) + 1 for r in c.comment_response],
            )
            for c in p.picture_comment
        ]
        for p in posts
    ]

    def size(keep_comments: int, keep_replies: int) -> int:
        total = base
        for post in sized:
            for whole, reply_sizes in _newest(post, keep_comments):
                total += whole - sum(reply_sizes[: max(0, len(reply_sizes) - keep_replies)])
        return total

    levels = [(COMMENTS_PER_POST, r) for r in range(REPLIES_PER_COMMENT - 1, -1, -1)]
    levels += [(c, 0) for c in range(COMMENTS_PER_POST - 1, -1, -1)]
    if size(COMMENTS_PER_POST, REPLIES_PER_COMMENT) <= budget:
        return
    keep_comments, keep_replies = next((lv for lv in levels if size(*lv) <= budget), (0, 0))
    for p in posts:
        p.picture_comment = _newest(p.picture_comment, keep_comments)
        for c in p.picture_comment:
            c.comment_response = _newest(c.comment_response, keep_replies)


@table.handles(PictureInfoRequest)
async def show_feed(ctx: Context, req: PictureInfoRequest) -> PictureInfoResponse:
    """The newest posts (older than `before`), each with its newest comments; 3 queries."""
    viewer = ctx.user_id
    async with ctx.store.read() as tx:
        posts = await tx.pictures.feed(viewer, req.before, req.limit)
        comments = await tx.pictures.comments_of([p.id for p in posts], COMMENTS_PER_POST)
        replies = await tx.pictures.replies_of([c.id for c in comments], REPLIES_PER_COMMENT)
    threads = _threads(ctx, comments, replies)
    public_url = ctx.settings.public_url
    information = [
        Post(
            picture_id=p.id,
            picture_publish_time=app_time(ctx, p.created_ts),
            picture_content=image_url(p.path, public_url),
            picture_words=p.words,
            picture_like_num=str(p.like_count),
            picture_owner=p.owner_nickname,
            picture_comment=threads.get(p.id, []),
            picture_comment_num=str(p.comment_count),
            user_id=p.owner_id,
            liked_by_me=p.liked_by_me,
            picture_publish_time_ts=p.created_ts,
        )
        for p in posts
    ]
    _fit(information, FEED_BYTES)
    return PictureInfoResponse(information=information)


@table.handles(PictureCommentListRequest)
async def list_comments(ctx: Context, req: PictureCommentListRequest) -> PictureCommentListResponse:
    """A page of a post's comments with their newest replies, or of one comment's replies."""
    async with ctx.store.read() as tx:
        await _picture(tx, req.picture_id)
        if req.comment_id is not None:
            parent = await tx.pictures.get_comment(req.comment_id)
            if parent is None or parent.picture_id != req.picture_id or parent.parent_id:
                raise CommentNotFound("comment_id is not a top-level comment of this picture")
            replies = await tx.pictures.replies_of([parent.id], REPLIES_PER_PAGE, req.before)
            return PictureCommentListResponse(comment_response=[_reply(ctx, r) for r in replies])
        comments = await tx.pictures.comments_of([req.picture_id], COMMENTS_PER_PAGE, req.before)
        replies = await tx.pictures.replies_of([c.id for c in comments], REPLIES_PER_COMMENT)
    return PictureCommentListResponse(
        picture_comment=_threads(ctx, comments, replies).get(req.picture_id, [])
    )


def _uploaded(ctx: Context, picture: Picture) -> PictureUploadResponse:
    return PictureUploadResponse(
        picture_id=picture.id, picture_content=image_url(picture.path, ctx.settings.public_url)
    )


@table.handles(PictureUploadRequest)
async def upload_picture(ctx: Context, req: PictureUploadRequest) -> PictureUploadResponse:
    """Check and store a picture (its budget spent first), then post it with its words."""
    user_id = ctx.user_id
    key = req.client_msg_id
    if key:
        async with ctx.store.read() as tx:
            first = await tx.pictures.by_client_msg_id(user_id, key)
        if first is not None:
            return _uploaded(ctx, first)
    now = ctx.now()
    rel = await store_picture(ctx, req.picture, UPLOAD, ctx.settings.uploads_per_hour, HOUR, now)
    try:
        async with ctx.unit() as tx:
            first = await tx.pictures.by_client_msg_id(user_id, key) if key else None
            if first is None:
                await check_stored(ctx, tx, rel)
                picture = await tx.pictures.create(user_id, rel, req.words, key, now)
    except BaseException:
        await give_back(ctx, user_id, UPLOAD, now)
        await forget_file(ctx, rel)
        raise
    if first is not None:
        await give_back(ctx, user_id, UPLOAD, now)
        if first.path != rel:
            await forget_file(ctx, rel)
        return _uploaded(ctx, first)
    ctx.log.info("picture %d posted", picture.id)
    return _uploaded(ctx, picture)


@table.handles(PictureLikeRequest)
async def like_picture(ctx: Context, req: PictureLikeRequest) -> PictureLikeResponse:
    """Like a picture once; tell its owner, once per liker."""
    user_id = ctx.user_id
    async with ctx.unit() as tx:
        liked = await tx.pictures.like(req.picture_id, user_id, ctx.now())
        if liked is None:
            raise PictureNotFound()
        count = str(liked.count)
        if liked.tell_owner:
            notify = PictureLikeNotify(
                picture_id=req.picture_id,
                user_id=user_id,
                nickname=liked.liker_nickname,
                picture_like_num=count,
            )
            await ctx.push(tx, liked.owner_id, notify)
    return PictureLikeResponse(picture_like_num=count)


@table.handles(PictureUnlikeRequest)
async def unlike_picture(ctx: Context, req: PictureUnlikeRequest) -> PictureUnlikeResponse:
    """Take a like back; unliking what was never liked changes nothing."""
    async with ctx.unit() as tx:
        unliked = await tx.pictures.unlike(req.picture_id, ctx.user_id)
        if unliked is None:
            raise PictureNotFound()
    return PictureUnlikeResponse(picture_like_num=str(unliked.count))


@table.handles(PictureCommentRequest)
async def comment_picture(ctx: Context, req: PictureCommentRequest) -> PictureCommentResponse:
    """Comment on a picture or reply to a comment; tell the owner and the one answered."""
    user_id = ctx.user_id
    now = ctx.now()
    key = req.client_msg_id
    async with ctx.unit() as tx:
        first = await tx.pictures.comment_by_client_msg_id(user_id, key) if key else None
        if first is not None:
            return PictureCommentResponse(comment_id=first.id)
        limit = ctx.settings.comments_per_minute
        await check_budget(tx, user_id, COMMENT, limit, MINUTE, now)
        picture = await _picture(tx, req.picture_id)
        target = None
        if req.reply_to is not None:
            target = await tx.pictures.get_comment(req.reply_to)
            if target is None or target.picture_id != picture.id:
                raise CommentNotFound("reply_to is not a comment of this picture")
        parent_id = None if target is None else (target.parent_id or target.id)
        comment = await tx.pictures.add_comment(
            picture.id, user_id, req.msg, parent_id, req.reply_to, key, now
        )
        await tx.pictures.record_action(user_id, COMMENT, now, now - MINUTE)
        recipients = [picture.owner_id]
        if target is not None:
            recipients.append(target.author_id)
        notify = PictureCommentNotify(
            picture_id=picture.id,
            comment_id=comment.id,
            user_id=user_id,
            nickname=comment.author_nickname,
            msg=comment.msg,
            reply_to=req.reply_to,
        )
        for recipient in dict.fromkeys(recipients):
            if recipient != user_id:
                await ctx.push(tx, recipient, notify)
    return PictureCommentResponse(comment_id=comment.id)


@table.handles(PictureCommentDeleteRequest)
async def delete_comment(
    ctx: Context, req: PictureCommentDeleteRequest
) -> PictureCommentDeleteResponse:
    """Delete a comment (its author or the picture's owner) with its replies."""
    user_id = ctx.user_id
    async with ctx.unit() as tx:
        comment = await tx.pictures.get_comment(req.comment_id)
        if comment is None:
            raise CommentNotFound()
        picture = await tx.pictures.get(comment.picture_id)
        if user_id != comment.author_id and (picture is None or user_id != picture.owner_id):
            raise NotAuthor()
        await tx.pictures.delete_comment(comment.id)
    return PictureCommentDeleteResponse()


@table.handles(PictureDeleteRequest)
async def delete_picture(ctx: Context, req: PictureDeleteRequest) -> PictureDeleteResponse:
    """Delete my post with its likes and comments, and its file once nothing uses it."""
    user_id = ctx.user_id
    async with ctx.unit() as tx:
        picture = await _picture(tx, req.picture_id)
        if picture.owner_id != user_id:
            raise NotAuthor("only the owner may delete a picture")
        await tx.pictures.delete(picture.id)
    await forget_file(ctx, picture.path)
    ctx.log.info("picture %d deleted", picture.id)
    return PictureDeleteResponse()
