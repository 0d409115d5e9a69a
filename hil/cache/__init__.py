"""The artifact cache under ~/.cache/wpp-hil: keys, usage, what the working tree maps to, and
pruning.
"""
