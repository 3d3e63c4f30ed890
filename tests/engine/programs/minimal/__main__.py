"""A file on disk managed by a dynamic provider, plus a config value and a secret."""

from pathlib import Path

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult


class FileProvider(ResourceProvider):
    def create(self, props):
        Path(props["path"]).write_text(props["content"])
        return CreateResult(id_=props["path"], outs=props)

    def diff(self, _id, olds, news):
        return DiffResult(changes=olds != news, replaces=["path"] if olds["path"] != news["path"] else [])

    def update(self, _id, _olds, news):
        Path(news["path"]).write_text(news["content"])
        return UpdateResult(outs=news)

    def delete(self, _id, props):
        Path(props["path"]).unlink(missing_ok=True)


class ManagedFile(pulumi.dynamic.Resource):
    path: pulumi.Output[str]
    content: pulumi.Output[str]

    def __init__(self, name, path, content, opts=None):
        super().__init__(FileProvider(), name, {"path": path, "content": content}, opts)


config = pulumi.Config()
f = ManagedFile("greeting", config.require("path"), config.get("content") or "hello")
pulumi.export("path", f.path)
pulumi.export("content", f.content)
pulumi.export("token", config.require_secret("token"))
