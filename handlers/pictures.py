"""The picture community, 秀爱社区: feed, upload, likes, comments (3.3, 3.4, 3.5, 4.2)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from lovewire.context import Context
from lovewire.errors import (
    CommentNotFound,
    Internal,
    NotAuthor,
    PictureNotFound,
    TooFrequent,
)
from lovewire.images import image_url
from lovewire.registry import HandlerTable
from lovewire.storage.base import Unit
from lovewire.storage.records import Picture, PictureComment
from lovewire.uploads import forget_file, give_back, store_picture
from protocol.pictures import (
    COMMENTS_PER_POST,
    REPLIES_PER_COMMENT,
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
from protocol.times import format_app_time

__all__ = ["table"]

table = HandlerTable()

MINUTE = 60
HOUR = 3600
UPLOAD = "upload"
COMMENT = "comment"


def _time(ctx: Context, ts: int) -> str:
    return format_app_time(ts, ctx.settings.zone)


async def _check_rate(tx: Unit, user_id: int, kind: str, limit: int, window: int, now: int) -> None:
    """TooFrequent once the user has done `limit` actions of a kind within `window`."""
    count, oldest = await tx.pictures.actions_since(user_id, kind, now - window + 1)
    if count >= limit:
        raise TooFrequent((oldest if oldest is not None else now) + window - now)


async def _picture(tx: Unit, picture_id: int) -> Picture:
    """The picture, or PictureNotFound (error 8)."""
    picture = await tx.pictures.get(picture_id)
    if picture is None:
        raise PictureNotFound()
    return picture


def _threads(
    ctx: Context, comments: Sequence[PictureComment], replies: Sequence[PictureComment]
) -> dict[int, list[Comment]]:
    """Comments by picture id, each with its replies, in storage order (oldest first)."""
    by_parent: dict[int, list[CommentReply]] = defaultdict(list)
    for r in replies:
        assert r.parent_id is not None
        by_parent[r.parent_id].append(
            CommentReply(
                comment_id=r.id,
                comment_response_own=r.author_nickname,
                comment_response_msg=r.msg,
                user_id=r.author_id,
                reply_to=r.reply_to if r.reply_to is not None else r.parent_id,
                comment_response_time=_time(ctx, r.created_ts),
                comment_response_time_ts=r.created_ts,
            )
        )
    by_picture: dict[int, list[Comment]] = defaultdict(list)
    for c in comments:
        by_picture[c.picture_id].append(
            Comment(
                comment_id=c.id,
                comment_own=c.author_nickname,
                comment_msg=c.msg,
                comment_response=by_parent.get(c.id, []),
                user_id=c.author_id,
                comment_time=_time(ctx, c.created_ts),
                comment_time_ts=c.created_ts,
                comment_response_num=str(c.reply_count),
            )
        )
    return by_picture


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
    return PictureInfoResponse(
        information=[
            Post(
                picture_id=p.id,
                picture_publish_time=_time(ctx, p.created_ts),
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
    )


@table.handles(PictureCommentListRequest)
async def list_comments(ctx: Context, req: PictureCommentListRequest) -> PictureCommentListResponse:
    """A post's comments older than `before`, 20 at a time, with their newest replies."""
    async with ctx.store.read() as tx:
        await _picture(tx, req.picture_id)
        comments = await tx.pictures.comments_of([req.picture_id], COMMENTS_PER_POST, req.before)
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
                if not (ctx.services.media_dir / rel).is_file():
                    raise Internal("the stored picture was removed meanwhile")
                picture = await tx.pictures.create(user_id, rel, req.words, key, now)
    except BaseException:
        await give_back(ctx, UPLOAD, now)
        await forget_file(ctx, rel)
        raise
    if first is not None:
        await give_back(ctx, UPLOAD, now)
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
        picture = await _picture(tx, req.picture_id)
        await tx.pictures.like(picture.id, user_id, ctx.now())
        count = await tx.pictures.like_count(picture.id)
        if picture.owner_id != user_id and await tx.pictures.mark_like_notified(
            picture.id, user_id
        ):
            liker = await tx.users.get(user_id)
            assert liker is not None
            notify = PictureLikeNotify(
                picture_id=picture.id,
                user_id=user_id,
                nickname=liker.nickname,
                picture_like_num=str(count),
            )
            await ctx.push(tx, picture.owner_id, notify)
    return PictureLikeResponse(picture_like_num=str(count))


@table.handles(PictureUnlikeRequest)
async def unlike_picture(ctx: Context, req: PictureUnlikeRequest) -> PictureUnlikeResponse:
    """Take a like back; unliking what was never liked changes nothing."""
    user_id = ctx.user_id
    async with ctx.unit() as tx:
        await _picture(tx, req.picture_id)
        await tx.pictures.unlike(req.picture_id, user_id)
        count = await tx.pictures.like_count(req.picture_id)
    return PictureUnlikeResponse(picture_like_num=str(count))


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
        await _check_rate(tx, user_id, COMMENT, limit, MINUTE, now)
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
