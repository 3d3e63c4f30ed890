"""Record schemas of dataset formats, as pandera DataFrameModels (validated lazily: every failure at once).

One row per record: its kind (`chat` or `text`), its turn roles (one letter per
turn: U, A, S) and the length of its shortest turn. No `from __future__ import
annotations` here: pandera reads the field annotations at runtime.
"""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class TextDocument(pa.DataFrameModel):
    """A plain-text document, or a conversation of User/Assistant turns with no empty turn."""

    kind: Series[str] = pa.Field(isin=["chat", "text"])
    roles: Series[str]
    shortest_turn: Series[int] = pa.Field(ge=1)

    @pa.dataframe_check(error="a conversation alternates User/Assistant turns, starting with User")
    @classmethod
    def conversation_shape(cls, df: pd.DataFrame) -> "pd.Series[bool]":
        return (df["kind"] != "chat") | df["roles"].str.fullmatch(r"S?(?:UA)+")


class ChatDocument(TextDocument):
    """Conversations only."""

    kind: Series[str] = pa.Field(isin=["chat"])


SCHEMAS: dict[str, type[TextDocument]] = {"chat-or-text": TextDocument, "chat": ChatDocument}
