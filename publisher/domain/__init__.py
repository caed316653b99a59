"""The domain: articles, their text rules, delivery states and the error tree.

Pure code with no I/O beyond reading an article's own files: it imports
nothing of ours from any layer above it, so every other layer can use it.
"""
