"""Standard column names used across seqrec."""


class Columns:
    """Names of the columns of interactions, features and recommendation tables."""

    User = "user_id"
    Item = "item_id"
    Weight = "weight"
    Datetime = "datetime"
    Score = "score"
    Rank = "rank"
    TargetItem = "target_item_id"  # item-to-item recommendations
    # flat feature tables
    Id = "id"
    Value = "value"
    Feature = "feature"

    Interactions = (User, Item, Weight, Datetime)
    Recommendations = (User, Item, Score, Rank)
    ItemItemRecommendations = (TargetItem, Item, Score, Rank)
