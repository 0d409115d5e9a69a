"""The WPP experiment on any Target: start tracked, trigger, cut power, boot, recreate, verify;
the snapshot reader; the demo.
"""
