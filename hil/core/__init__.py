"""The generic layer: errors, deadlines, run directories, the inventory, and the Target built
from it by the parts factory. Imports nothing above it.
"""
