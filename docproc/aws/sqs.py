"""SQS: the queue of S3 event notifications an S3 watch may listen to."""

from __future__ import annotations

from docproc.aws.session import Session, translated


class Queue:
    """The SQS calls docproc makes on one queue of S3 event notifications."""

    def __init__(self, url: str, session: Session) -> None:
        self.url = url
        self._sqs = session.client("sqs")

    def receive(self, wait_seconds: int) -> list[tuple[str, str]]:
        """Long-poll for up to 10 messages: (receipt handle, body) pairs."""
        with translated(f"receive from {self.url}"):
            response = self._sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
            )
        return [(m["ReceiptHandle"], m.get("Body", "")) for m in response.get("Messages", ())]

    def delete(self, receipts: list[str]) -> None:
        """Delete handled messages (at most 10 per call)."""
        for start in range(0, len(receipts), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": r}
                for i, r in enumerate(receipts[start : start + 10])
            ]
            with translated("delete messages from " + self.url):
                self._sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)
