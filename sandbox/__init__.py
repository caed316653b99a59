"""Local stand-ins for the remote platforms, faithful to their API shapes.

They are used by `publisher demo`, `publisher sandbox` and the tests. Each
one also shows what a follower would see, and has a `/_control` endpoint
to inject faults and to count duplicate posts.
"""
