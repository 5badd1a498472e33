/* The ordered map: an AVL tree with subtree sizes, one allocation per key (see kv_impl.h). */
#include "server/kv/kv_impl.h"

#include "common/check.h"

#include <stdlib.h>
#include <string.h>

int key_cmp(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
	size_t m = alen < blen ? alen : blen;
	int c = m ? memcmp(a, b, m) : 0;
	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int cmp_node(const unsigned char *k, size_t klen, const struct node *n)
{
	return key_cmp(k, klen, node_key(n), n->key_len);
}

static int32_t height(const struct node *n)
{
	return n ? n->height : 0;
}

static uint64_t size(const struct node *n)
{
	return n ? n->size : 0;
}

static void update(struct node *n)
{
	int32_t hl = height(n->left), hr = height(n->right);
	n->height = (hl > hr ? hl : hr) + 1;
	n->size = size(n->left) + size(n->right) + 1;
}

static struct node *rotate_right(struct node *n)
{
	struct node *l = n->left;
	n->left = l->right;
	l->right = n;
	update(n);
	update(l);
	return l;
}

static struct node *rotate_left(struct node *n)
{
	struct node *r = n->right;
	n->right = r->left;
	r->left = n;
	update(n);
	update(r);
	return r;
}

/* Restore the AVL property at n (children already balanced, heights differ by <= 2). */
static struct node *balance(struct node *n)
{
	update(n);
	int32_t bf = height(n->left) - height(n->right);
	if (bf > 1) {
		if (height(n->left->left) < height(n->left->right))
			n->left = rotate_left(n->left);
		return rotate_right(n);
	}
	if (bf < -1) {
		if (height(n->right->right) < height(n->right->left))
			n->right = rotate_right(n->right);
		return rotate_left(n);
	}
	return n;
}

struct node *tree_find(struct node *root, const unsigned char *k, size_t klen)
{
	while (root) {
		int c = cmp_node(k, klen, root);
		if (c == 0)
			return root;
		root = c < 0 ? root->left : root->right;
	}
	return NULL;
}

struct node **tree_find_slot(struct node **root, const unsigned char *k, size_t klen)
{
	struct node **slot = root;
	while (*slot) {
		int c = cmp_node(k, klen, *slot);
		if (c == 0)
			return slot;
		slot = c < 0 ? &(*slot)->left : &(*slot)->right;
	}
	return NULL;
}

struct node *tree_insert(struct node *root, struct node *n)
{
	if (!root) {
		n->left = n->right = NULL;
		n->height = 1;
		n->size = 1;
		return n;
	}
	int c = cmp_node(node_key(n), n->key_len, root);
	INVARIANT(c != 0, "kv: tree_insert of a key already present");
	if (c < 0)
		root->left = tree_insert(root->left, n);
	else
		root->right = tree_insert(root->right, n);
	return balance(root);
}

/* Detach the smallest node of t into *min; returns the remaining subtree. */
static struct node *remove_min(struct node *t, struct node **min)
{
	if (!t->left) {
		*min = t;
		return t->right;
	}
	t->left = remove_min(t->left, min);
	return balance(t);
}

struct node *tree_remove(struct node *root, const unsigned char *k, size_t klen,
			 struct node **removed)
{
	INVARIANT(root != NULL, "kv: tree_remove of an absent key");
	int c = cmp_node(k, klen, root);
	if (c < 0) {
		root->left = tree_remove(root->left, k, klen, removed);
		return balance(root);
	}
	if (c > 0) {
		root->right = tree_remove(root->right, k, klen, removed);
		return balance(root);
	}
	*removed = root;
	if (!root->left)
		return root->right;
	if (!root->right)
		return root->left;
	/* Relink the successor in root's place: nodes vary in size, so data never moves. */
	struct node *succ;
	struct node *right = remove_min(root->right, &succ);
	succ->left = root->left;
	succ->right = right;
	return balance(succ);
}

uint64_t tree_rank(const struct node *root, const unsigned char *k, size_t klen)
{
	uint64_t r = 0;
	if (!k)
		return size(root);
	while (root) {
		if (cmp_node(k, klen, root) <= 0) {
			root = root->left;
		} else {
			r += size(root->left) + 1;
			root = root->right;
		}
	}
	return r;
}

struct node *tree_lower_bound(struct node *root, const unsigned char *k, size_t klen)
{
	struct node *best = NULL;
	while (root) {
		if (cmp_node(k, klen, root) <= 0) {
			best = root;
			root = root->left;
		} else {
			root = root->right;
		}
	}
	return best;
}

void tree_free(struct node *root)
{
	/* Iterative (rotate left children up) so a deep tree cannot overflow the C stack. */
	while (root) {
		if (root->left) {
			struct node *l = root->left;
			root->left = l->right;
			l->right = root;
			root = l;
		} else {
			struct node *r = root->right;
			free(root);
			root = r;
		}
	}
}

void tree_iter_init(struct tree_iter *it, struct node *root, const unsigned char *start,
		    size_t start_len)
{
	it->depth = 0;
	while (root) {
		if (!start || cmp_node(start, start_len, root) <= 0) {
			INVARIANT(it->depth < (int)(sizeof(it->stack) / sizeof(it->stack[0])),
				  "kv: tree deeper than the iterator stack");
			it->stack[it->depth++] = root;
			root = root->left;
		} else {
			root = root->right;
		}
	}
}

struct node *tree_iter_next(struct tree_iter *it)
{
	if (it->depth == 0)
		return NULL;
	struct node *n = it->stack[--it->depth];
	for (struct node *c = n->right; c; c = c->left) {
		INVARIANT(it->depth < (int)(sizeof(it->stack) / sizeof(it->stack[0])),
			  "kv: tree deeper than the iterator stack");
		it->stack[it->depth++] = c;
	}
	return n;
}
