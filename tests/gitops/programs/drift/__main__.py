"""A file whose provider reads it back on refresh, so an edit made outside Pulumi is drift."""

from pathlib import Path

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult


class FileProvider(ResourceProvider):
    def create(self, props):
        Path(props["path"]).write_text(props["content"])
        return CreateResult(id_=props["path"], outs=props)

    def read(self, id_, props):
        path = Path(id_)
        return ReadResult(id_=id_, outs={**props, "content": path.read_text() if path.exists() else ""})

    def diff(self, _id, olds, news):
        return DiffResult(changes=olds != news, replaces=["path"] if olds["path"] != news["path"] else [])

    def update(self, _id, _olds, news):
        Path(news["path"]).write_text(news["content"])
        return UpdateResult(outs=news)

    def delete(self, _id, props):
        Path(props["path"]).unlink(missing_ok=True)


class ManagedFile(pulumi.dynamic.Resource):
    def __init__(self, name, path, content):
        super().__init__(FileProvider(), name, {"path": path, "content": content})


config = pulumi.Config()
ManagedFile("greeting", config.require("path"), config.get("content") or "hello")
